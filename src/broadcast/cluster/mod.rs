//! Broadcast across machines (`--cluster`): the instances that name the same stream share
//! one program, run by whichever instance holds the runner claim, and each fans the
//! stream out to its own clients. The coordination engine (Redis, NATS JetStream) sits
//! behind [`engine::Engine`]; each engine lives in a file of its own here and offers
//! `pub fn open(target: &ClusterTarget, key: &StreamKey) -> Arc<dyn Engine>`, connecting
//! lazily.

pub mod engine;
pub mod nats;
pub mod target;
