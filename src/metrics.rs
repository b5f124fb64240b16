//! The daemon's counters, gauges and histogram, behind a few plain functions, so that the
//! code being measured knows nothing of Prometheus. Until [`enable`] is called (only with
//! `--metrics`) every function is one atomic load and a not-taken branch: nothing is
//! allocated, locked or counted.
//!
//! No label carries anything a client or a program sent: labels are HTTP statuses and close
//! codes the daemon itself chose, a direction, or a handler name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Instant;

/// Which part of the daemon answered a plain HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `--staticdir`.
    Static,
    /// `--cgidir`.
    Cgi,
    /// `--devconsole`.
    Console,
    /// Nothing serves the path (404).
    None,
}

impl Handler {
    fn label(self) -> &'static str {
        match self {
            Handler::Static => "static",
            Handler::Cgi => "cgi",
            Handler::Console => "devconsole",
            Handler::None => "none",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    handler: &'static str,
    status: u16,
}

/// Every metric, registered once.
struct Metrics {
    registry: Registry,
    connections: Counter,
    upgrades: Family<StatusLabel, Counter>,
    upgrade_seconds: Histogram,
    sessions: Gauge,
    programs_running: Gauge,
    programs_started: Counter,
    spawn_failures: Counter,
    closes: Family<CodeLabel, Counter>,
    // Per-message counters are taken out of their families once, so counting a message is
    // one atomic add with no label lookup.
    messages_in: Counter,
    messages_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    slow_client_closes: Counter,
    http_requests: Family<HttpLabels, Counter>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

#[inline]
fn metrics() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Starts counting (`--metrics`). Counts before this call are not kept.
pub fn enable() {
    METRICS.get_or_init(Metrics::new);
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    metrics().is_some()
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("websocketd");
        let connections = Counter::default();
        registry.register(
            "connections_accepted",
            "Connections accepted on the WebSocket and HTTP listeners",
            connections.clone(),
        );
        let upgrades = Family::<StatusLabel, Counter>::default();
        registry.register(
            "upgrades",
            "WebSocket upgrade requests by the HTTP status answered (101 accepted, 400 bad handshake, 403 origin refused, 404 no such script, 429 --maxforks reached)",
            upgrades.clone(),
        );
        // 100 µs to about 6.5 s.
        let upgrade_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 17));
        registry.register(
            "upgrade_seconds",
            "Time from accepting a connection to answering its upgrade with 101 (includes TLS)",
            upgrade_seconds.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "sessions_active",
            "WebSocket sessions running",
            sessions.clone(),
        );
        let programs_running = Gauge::default();
        registry.register(
            "programs_running",
            "Programs (WebSocket and CGI) started and not yet exited",
            programs_running.clone(),
        );
        let programs_started = Counter::default();
        registry.register(
            "programs_started",
            "Programs (WebSocket and CGI) started",
            programs_started.clone(),
        );
        let spawn_failures = Counter::default();
        registry.register(
            "spawn_failures",
            "Programs that could not be started",
            spawn_failures.clone(),
        );
        let closes = Family::<CodeLabel, Counter>::default();
        registry.register(
            "close_frames_sent",
            "Close frames sent to clients, by close code",
            closes.clone(),
        );
        let messages = Family::<DirectionLabel, Counter>::default();
        registry.register(
            "messages",
            "WebSocket messages relayed: in (client to program) and out (program to client)",
            messages.clone(),
        );
        let bytes = Family::<DirectionLabel, Counter>::default();
        registry.register(
            "message_bytes",
            "Payload bytes of the WebSocket messages relayed, by direction",
            bytes.clone(),
        );
        let slow_client_closes = Counter::default();
        registry.register(
            "slow_client_closes",
            "Clients disconnected because they could not keep up with their messages",
            slow_client_closes.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Plain HTTP requests by handler and status answered",
            http_requests.clone(),
        );
        let direction = |family: &Family<DirectionLabel, Counter>, direction| {
            family.get_or_create(&DirectionLabel { direction }).clone()
        };
        Metrics {
            connections,
            upgrades,
            upgrade_seconds,
            sessions,
            programs_running,
            programs_started,
            spawn_failures,
            closes,
            messages_in: direction(&messages, "in"),
            messages_out: direction(&messages, "out"),
            bytes_in: direction(&bytes, "in"),
            bytes_out: direction(&bytes, "out"),
            slow_client_closes,
            http_requests,
            registry,
        }
    }
}

/// A connection was accepted on a WebSocket/HTTP listener.
#[inline]
pub fn connection_accepted() {
    if let Some(m) = metrics() {
        m.connections.inc();
    }
}

/// An upgrade request was answered with `status`; a 101 also records the time since the
/// connection was `accepted`.
#[inline]
pub fn upgrade_answered(status: u16, accepted: Instant) {
    if let Some(m) = metrics() {
        m.upgrades.get_or_create(&StatusLabel { status }).inc();
        if status == 101 {
            m.upgrade_seconds.observe(accepted.elapsed().as_secs_f64());
        }
    }
}

/// A WebSocket session began.
#[inline]
pub fn session_started() {
    if let Some(m) = metrics() {
        m.sessions.inc();
    }
}

/// A WebSocket session ended.
#[inline]
pub fn session_ended() {
    if let Some(m) = metrics() {
        m.sessions.dec();
    }
}

/// A program was started.
#[inline]
pub fn program_started() {
    if let Some(m) = metrics() {
        m.programs_started.inc();
        m.programs_running.inc();
    }
}

/// A started program exited (or its exit can no longer be known).
#[inline]
pub fn program_ended() {
    if let Some(m) = metrics() {
        m.programs_running.dec();
    }
}

/// A program could not be started.
#[inline]
pub fn spawn_failed() {
    if let Some(m) = metrics() {
        m.spawn_failures.inc();
    }
}

/// A close frame with `code` was sent to a client.
#[inline]
pub fn close_sent(code: u16) {
    if let Some(m) = metrics() {
        m.closes.get_or_create(&CodeLabel { code }).inc();
    }
}

/// A message of `bytes` payload bytes arrived from a client.
#[inline]
pub fn message_in(bytes: usize) {
    if let Some(m) = metrics() {
        m.messages_in.inc();
        m.bytes_in.inc_by(bytes as u64);
    }
}

/// A message of `bytes` payload bytes was queued for a client.
#[inline]
pub fn message_out(bytes: usize) {
    if let Some(m) = metrics() {
        m.messages_out.inc();
        m.bytes_out.inc_by(bytes as u64);
    }
}

/// A client was disconnected because it could not keep up.
#[inline]
pub fn slow_client_closed() {
    if let Some(m) = metrics() {
        m.slow_client_closes.inc();
    }
}

/// A plain HTTP request was answered by `handler` with `status`.
#[inline]
pub fn http_answered(handler: Handler, status: u16) {
    if let Some(m) = metrics() {
        let labels = HttpLabels {
            handler: handler.label(),
            status,
        };
        m.http_requests.get_or_create(&labels).inc();
    }
}

/// The current values in the OpenMetrics text format (which Prometheus reads); `None` when
/// metrics are off.
pub fn encode() -> Option<String> {
    let m = metrics()?;
    let mut text = String::with_capacity(4096);
    prometheus_client::encoding::text::encode(&mut text, &m.registry).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_until_enabled_then_counts() {
        // Before enable nothing is recorded (and nothing panics).
        if !enabled() {
            connection_accepted();
            assert!(encode().is_none());
        }
        enable();
        connection_accepted();
        upgrade_answered(101, Instant::now());
        upgrade_answered(403, Instant::now());
        message_in(5);
        message_out(7);
        close_sent(1000);
        http_answered(Handler::Static, 200);
        let text = encode().unwrap();
        for line in [
            "websocketd_connections_accepted_total 1",
            "websocketd_upgrades_total{status=\"101\"} 1",
            "websocketd_upgrades_total{status=\"403\"} 1",
            "websocketd_messages_total{direction=\"in\"} 1",
            "websocketd_message_bytes_total{direction=\"out\"} 7",
            "websocketd_close_frames_sent_total{code=\"1000\"} 1",
            "websocketd_http_requests_total{handler=\"static\",status=\"200\"} 1",
            "websocketd_upgrade_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
