//! `--cluster` with Redis: the engine-generic scenarios of `common/cluster.rs` run against a
//! real `redis-server` started on a free port of 127.0.0.1, with nothing kept on disk.

#[path = "common/certificate.rs"]
mod certificate;
#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{EngineServer, RedisServer};
use common::{alive, free_port, Server};
use std::process::Command;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_show_the_same_stream_from_one_program() {
    cluster::same_stream_everywhere::<RedisServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_runner_fails_over_within_the_lease_without_duplicates() {
    cluster::failover_after_sigkill::<RedisServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_stopped_past_its_lease_is_fenced_and_stops_its_program() {
    cluster::fenced_after_sigstop::<RedisServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_recover_when_redis_restarts_empty() {
    cluster::engine_restart::<RedisServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_from_two_instances_reaches_the_one_program_in_order() {
    cluster::input_from_two_instances::<RedisServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_the_claim() {
    cluster::graceful_shutdown_hands_over::<RedisServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_engine_keeps_the_engine_contract() {
    cluster::engine_contract::<RedisServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_password_from_the_environment_never_logs_it() {
    let cert = certificate::Certificate::new("cluster-rediss");
    let port = free_port();
    let mut command = Command::new("redis-server");
    command.args([
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--tls-cert-file",
        &cert.path("server.pem"),
        "--tls-key-file",
        &cert.path("server.key"),
        "--tls-ca-cert-file",
        &cert.path("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        cluster::PASSWORD,
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let mut redis = cluster::spawn_listening(&mut command, port, "redis-server with TLS");
    let url = format!("--cluster=rediss://127.0.0.1:{port}/tls");
    let ca = cert.path("ca.pem");
    let servers = cluster::one_program_over_tls(&url, &ca).await;
    // A wrong password: the engine is unreachable, logged once, without the password.
    let refs: Vec<&Server> = servers.iter().collect();
    cluster::wrong_password_never_logged(&url, &ca, &refs);
    drop(servers);
    cluster::stop_child(&mut redis);
}
