//! Broadcast across machines (`--cluster`): the instances that name the same stream share
//! one program, run by whichever instance holds the runner claim, and each fans the
//! stream out to its own clients. The coordination engine (Redis, NATS JetStream) sits
//! behind [`engine::Engine`]; each engine lives in a file of its own here and offers
//! `pub fn open(target: &ClusterTarget, key: &StreamKey, window: usize) -> Arc<dyn Engine>`,
//! connecting lazily.
//!
//! ```text
//!  instance A (runner)             engine (Redis / NATS)            instance B, C (relay or any)
//!  program ─→ hub ─→ ClusterBus ──append (fenced by claim)──→ stream ──read──→ reader ─→ fan-out ─→ clients
//!                    reader ←──────────────read───────────────┘
//!  lease loop ──acquire / renew / release──→ claim + epoch ←──acquire (when free)── lease loop
//!  program stdin ←─ pump ←──take (runner only)── input stream ←──push── clients of any instance
//! ```

pub mod bus;
pub mod codec;
pub mod engine;
pub mod lease;
pub mod nats;
pub mod reader;
pub mod redis;
pub mod target;

use crate::broadcast::hub::Hub;
use crate::config::{BroadcastInput, BroadcastSettings, ClusterSettings};
use bus::ClusterBus;
use engine::{Engine, StreamKey};
use std::sync::Arc;
use target::{ClusterTarget, EngineKind};
use tokio::sync::watch;

/// Opens the engine `target` names for the stream `key`.
pub fn open_engine(target: &ClusterTarget, key: &StreamKey, window: usize) -> Arc<dyn Engine> {
    match target.engine {
        EngineKind::Redis => redis::open(target, key, window),
        EngineKind::Nats => nats::open(target, key, window),
    }
}

/// The bus of one route in a cluster, with its stream reader and (unless a relay) its
/// lease loop started once the hub exists: see [`start`].
pub fn bus(
    cluster: &ClusterSettings,
    settings: &BroadcastSettings,
    route: &[u8],
    shutdown: watch::Receiver<bool>,
) -> Arc<ClusterBus> {
    let key = StreamKey {
        name: cluster.target.name.clone(),
        route: String::from_utf8_lossy(route).into_owned(),
    };
    let engine = open_engine(&cluster.target, &key, settings.replay);
    let label = format!("{} route {}", cluster.target, key.route);
    Arc::new(ClusterBus::new(
        engine,
        settings.max_queue,
        settings.replay,
        shutdown,
        label,
    ))
}

/// Starts the stream reader and the lease loop of `hub`, whose bus is `bus`.
pub fn start(
    hub: Arc<Hub>,
    bus: Arc<ClusterBus>,
    cluster: &ClusterSettings,
    settings: &BroadcastSettings,
    close_ms: u64,
    shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(reader::read_stream(
        bus.clone(),
        settings.replay,
        shutdown.clone(),
    ));
    let lease = lease::LeaseSettings {
        role: cluster.role,
        lease: cluster.lease,
        close_ms,
        input: settings.input != BroadcastInput::None,
    };
    tokio::spawn(lease::run(hub, bus, lease, shutdown));
}
