//! `--cluster` with Redis: the engine-generic scenarios of `common/cluster.rs` run against a
//! real `redis-server` started on a free port of 127.0.0.1, with nothing kept on disk.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{EngineServer, RedisServer};
use common::alive;

#[test]
fn redis_fixture_restarts_on_its_port_and_stops_by_pid() {
    let mut redis = RedisServer::start();
    let first = redis.pid();
    assert!(alive(first));
    assert!(redis
        .url("feed")
        .ends_with(&format!(":{}/feed", redis.port())));
    redis.restart();
    assert!(!alive(first));
    assert_ne!(redis.pid(), first);
    assert!(std::net::TcpStream::connect(("127.0.0.1", redis.port())).is_ok());
    let second = redis.pid();
    redis.stop();
    assert!(!alive(second));
}
