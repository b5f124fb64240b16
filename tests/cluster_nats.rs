//! `--cluster` with NATS JetStream, against a real `nats-server -js` (Debian's 2.9) started
//! on a free port of 127.0.0.1 with a temporary store: the engine-generic scenarios of
//! `common/cluster.rs`, and the NATS engine's own promises checked directly — one claim
//! holder at a time, epochs that grow, a fenced append (a holder whose claim was taken over
//! cannot add a record, however its writes are timed), positions, reading from a position,
//! the last records, input taken only by the holder, recovery after the server restarts
//! with or without its data.

#[path = "common/certificate.rs"]
mod certificate;
#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/nats.rs"]
mod nats;

use bytes::Bytes;
use cluster::EngineServer;
use common::{alive, Server, DEADLINE};
use nats::NatsServer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use websocketd::broadcast::cluster::engine::{Claim, Engine, EngineError, Position, StreamKey};
use websocketd::broadcast::cluster::nats::open;
use websocketd::broadcast::cluster::target::ClusterTarget;

impl EngineServer for NatsServer {
    fn start() -> Self {
        NatsServer::start_with(nats::NatsOptions::default())
    }

    fn url(&self, name: &str) -> String {
        NatsServer::url(self, name)
    }

    fn pid(&self) -> u32 {
        NatsServer::pid(self).unwrap_or(0)
    }

    fn stop(&mut self) {
        NatsServer::stop(self);
    }

    fn restart(&mut self) {
        self.restart_empty();
    }
}

#[test]
fn nats_fixture_restarts_on_its_port_and_stops_by_pid() {
    let mut server = NatsServer::start();
    let first = NatsServer::pid(&server).unwrap();
    assert!(alive(first));
    assert!(server
        .url("feed")
        .ends_with(&format!(":{}/feed", server.port)));
    let store = server.dir.join("store");
    assert!(
        store.join("jetstream").is_dir(),
        "JetStream keeps its store there"
    );
    server.restart();
    assert!(!alive(first));
    let second = NatsServer::pid(&server).unwrap();
    assert_ne!(second, first);
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok());
    server.stop();
    assert!(!alive(second));
    let dir = server.dir.clone();
    drop(server);
    assert!(!dir.exists(), "nothing is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_show_the_same_stream_from_one_program() {
    cluster::same_stream_everywhere::<NatsServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_runner_fails_over_within_the_lease_without_duplicates() {
    cluster::failover_after_sigkill::<NatsServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_stopped_past_its_lease_is_fenced_and_stops_its_program() {
    cluster::fenced_after_sigstop::<NatsServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_recover_when_nats_restarts_empty() {
    cluster::engine_restart::<NatsServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_from_two_instances_reaches_the_one_program_in_order() {
    cluster::input_from_two_instances::<NatsServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_the_claim() {
    cluster::graceful_shutdown_hands_over::<NatsServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_engine_keeps_the_engine_contract() {
    cluster::engine_contract::<NatsServer>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_password_from_the_environment_never_logs_it() {
    let cert = certificate::Certificate::new("cluster-nats-tls");
    let server = NatsServer::start_with(nats::NatsOptions {
        credentials: Some(("feed".into(), cluster::PASSWORD.into())),
        tls: Some((cert.path("server.pem"), cert.path("server.key"))),
    });
    // The user in a nats+tls:// URL, the password from the environment.
    let url = format!("--cluster=nats+tls://feed@127.0.0.1:{}/tls", server.port);
    let ca = cert.path("ca.pem");
    let servers = cluster::one_program_over_tls(&url, &ca).await;
    // The password in the URL (tls://) works as well; a wrong one leaves the engine
    // unreachable, logged without the password.
    let good = format!(
        "--cluster=tls://feed:{}@127.0.0.1:{}/tls",
        cluster::PASSWORD,
        server.port
    );
    let with_url = Server::start_with(
        &common::root(),
        &[("SSL_CERT_FILE", ca.as_str())],
        &[
            "--broadcast",
            good.as_str(),
            "--loglevel=debug",
            "sh",
            "-c",
            cluster::COUNTER,
        ],
    );
    let watcher = cluster::Watcher::connect(&with_url.url("/")).await;
    assert!(
        watcher
            .wait_for(DEADLINE, |t| cluster::counter_line(t).is_some())
            .await,
        "{:?}",
        with_url.stdout.all()
    );
    let others: Vec<&Server> = servers.iter().chain([&with_url]).collect();
    cluster::wrong_password_never_logged(&url, &ca, &others);
}

const LEASE: Duration = Duration::from_millis(600);
const START: Position = Position {
    epoch: 0,
    offset: 0,
};

fn engine(server: &NatsServer, name: &str) -> Arc<dyn Engine> {
    let target = ClusterTarget::parse(&server.url(name), None).unwrap();
    open(
        &target,
        &StreamKey {
            name: name.into(),
            route: "/".into(),
        },
        0,
    )
}

fn lines(items: &[&str]) -> Vec<Bytes> {
    items.iter().map(|s| Bytes::from(s.to_string())).collect()
}

/// Retries `acquire` until it succeeds or the deadline passes (the engine may still be
/// connecting, or the lease running out).
async fn acquire_within(
    engine: &Arc<dyn Engine>,
    token: &str,
    floor: u64,
    within: Duration,
) -> Option<Claim> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(claim)) = engine.acquire(token, floor, LEASE).await {
            return Some(claim);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn read_all(
    engine: &Arc<dyn Engine>,
    after: Position,
    want: usize,
) -> Vec<(Position, String)> {
    let mut out = Vec::new();
    let mut after = after;
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < want && Instant::now() < deadline {
        if let Ok(records) = engine.read(after, 100, Duration::from_millis(200)).await {
            for record in records {
                after = record.position;
                out.push((
                    record.position,
                    String::from_utf8_lossy(&record.data).into_owned(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_fenced_appends_and_growing_epochs() {
    let server = NatsServer::start();
    let a = engine(&server, "fence");
    let b = engine(&server, "fence");

    let claim_a = acquire_within(&a, "a1", 0, Duration::from_secs(20))
        .await
        .expect("first acquire");
    assert!(claim_a.epoch >= 1);
    // Held and renewed: nobody else gets it, however long they try.
    let until = Instant::now() + LEASE * 3;
    while Instant::now() < until {
        assert_eq!(b.acquire("b1", 0, LEASE).await, Ok(None));
        a.renew(&claim_a, LEASE).await.expect("renew");
        tokio::time::sleep(LEASE / 6).await;
    }
    a.append(&claim_a, 1, lines(&["a-1", "a-2"])).await.unwrap();
    // The retry of an append that went in adds nothing.
    a.append(&claim_a, 1, lines(&["a-1", "a-2"])).await.unwrap();
    a.append(&claim_a, 3, lines(&["a-3"])).await.unwrap();

    // A stops renewing (paused); B takes over once the lease has passed unchanged.
    let claim_b = acquire_within(&b, "b2", 0, Duration::from_secs(20))
        .await
        .expect("takeover after the lease");
    assert!(
        claim_b.epoch > claim_a.epoch,
        "{claim_b:?} after {claim_a:?}"
    );

    // From now on A cannot add a single record, nor renew, nor take input.
    assert_eq!(
        a.append(&claim_a, 4, lines(&["stale"])).await,
        Err(EngineError::Fenced)
    );
    assert_eq!(a.renew(&claim_a, LEASE).await, Err(EngineError::Fenced));
    assert_eq!(
        a.take_input(&claim_a, 10, Duration::ZERO).await,
        Err(EngineError::Fenced)
    );
    b.append(&claim_b, 1, lines(&["b-1"])).await.unwrap();

    let records = read_all(&a, START, 4).await;
    let texts: Vec<&str> = records.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["a-1", "a-2", "a-3", "b-1"]);
    let positions: Vec<Position> = records.iter().map(|(p, _)| *p).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(positions[1].offset, positions[0].offset + 1);
    assert_eq!(positions[2].offset, positions[1].offset + 1);
    assert_eq!(positions[3].epoch, claim_b.epoch);
    // Reading after a position gives what follows it only.
    let rest = read_all(&b, positions[1], 2).await;
    assert_eq!(
        rest.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["a-3", "b-1"]
    );
    // The last records.
    let last = a.last(2).await.unwrap();
    assert_eq!(
        last.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        lines(&["a-3", "b-1"])
    );

    // Released: another instance acquires at once, with a higher epoch; a floor is obeyed.
    b.release(&claim_b).await.unwrap();
    let claim_c = a
        .acquire("a3", 0, LEASE)
        .await
        .unwrap()
        .expect("free after release");
    assert!(claim_c.epoch > claim_b.epoch);
    a.release(&claim_c).await.unwrap();
    let claim_d = b.acquire("b4", 1000, LEASE).await.unwrap().unwrap();
    assert_eq!(claim_d.epoch, 1001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_reaches_only_the_holder_in_order() {
    let server = NatsServer::start();
    let a = engine(&server, "input");
    let b = engine(&server, "input");
    let claim = acquire_within(&a, "a", 0, Duration::from_secs(20))
        .await
        .unwrap();
    for i in 0..20 {
        b.push_input(Bytes::from(format!("b{i}"))).await.unwrap();
        a.push_input(Bytes::from(format!("a{i}"))).await.unwrap();
    }
    let stranger = Claim {
        token: "b".into(),
        epoch: claim.epoch,
    };
    assert_eq!(
        b.take_input(&stranger, 10, Duration::ZERO).await,
        Err(EngineError::Fenced)
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 40 && Instant::now() < deadline {
        for input in a
            .take_input(&claim, 7, Duration::from_millis(200))
            .await
            .unwrap()
        {
            got.push(String::from_utf8_lossy(&input).into_owned());
        }
    }
    let expected: Vec<String> = (0..20)
        .flat_map(|i| [format!("b{i}"), format!("a{i}")])
        .collect();
    assert_eq!(got, expected);
    // Taken once: nothing comes again.
    assert!(a
        .take_input(&claim, 10, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_the_server_restarts() {
    let mut server = NatsServer::start();
    let a = engine(&server, "restart");
    let claim = acquire_within(&a, "a", 0, Duration::from_secs(20))
        .await
        .unwrap();
    a.append(&claim, 1, lines(&["before"])).await.unwrap();
    let before = read_all(&a, START, 1).await;
    assert_eq!(before.len(), 1);

    server.stop();
    let result = a.append(&claim, 2, lines(&["during"])).await;
    assert!(
        matches!(result, Err(EngineError::Unreachable(_))),
        "{result:?}"
    );
    server.restart();

    // The old claim is still stored; after its lease a new one is taken, and the stream
    // carries on from where it was.
    let claim2 = acquire_within(&a, "a2", claim.epoch, Duration::from_secs(20))
        .await
        .expect("acquire after restart");
    assert!(claim2.epoch > claim.epoch);
    assert_eq!(
        a.append(&claim, 2, lines(&["stale"])).await,
        Err(EngineError::Fenced)
    );
    a.append(&claim2, 1, lines(&["after"])).await.unwrap();
    // "during" was sent while the claim was still the stored one: the client delivers it
    // when it reconnects, ahead of the new claim, so it may be there (once) — "stale" never.
    let mut records = read_all(&a, before[0].0, 1).await;
    if records.len() == 1 && records[0].1 == "during" {
        records.extend(read_all(&a, records[0].0, 1).await);
    }
    if records.first().is_some_and(|(_, text)| text == "during") {
        records.remove(0);
    }
    let texts: Vec<&str> = records.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["after"]);
    assert_eq!(records[0].0.epoch, claim2.epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_writing_flat_out_cannot_write_after_a_takeover() {
    let server = NatsServer::start();
    let a = engine(&server, "race");
    let b = engine(&server, "race");
    let claim_a = acquire_within(&a, "a", 0, Duration::from_secs(20))
        .await
        .unwrap();
    // A appends as fast as it can and never renews, as a runner whose renewals stopped
    // (paused, cut off) while its writes still go out.
    let writer = {
        let a = a.clone();
        let claim_a = claim_a.clone();
        tokio::spawn(async move {
            let mut acknowledged = 0u64;
            for i in 0.. {
                match a
                    .append(&claim_a, acknowledged + 1, lines(&[&format!("a{i}")]))
                    .await
                {
                    Ok(()) => acknowledged += 1,
                    Err(EngineError::Fenced) => return acknowledged,
                    Err(EngineError::Unreachable(_)) => {}
                }
            }
            acknowledged
        })
    };
    let claim_b = acquire_within(&b, "b", 0, Duration::from_secs(20))
        .await
        .unwrap();
    b.append(&claim_b, 1, lines(&["b0"])).await.unwrap();
    let acknowledged = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("the old holder is fenced")
        .unwrap();
    assert!(acknowledged > 0);
    let records = read_all(&b, START, acknowledged as usize + 1).await;
    // Every acknowledged record of A is there, all of them before B's first record, and
    // none after it.
    let first_b = records
        .iter()
        .position(|(p, _)| p.epoch == claim_b.epoch)
        .expect("b0 is there");
    assert_eq!(first_b as u64, acknowledged, "{records:?}");
    assert!(records[..first_b]
        .iter()
        .all(|(p, _)| p.epoch == claim_a.epoch));
    assert_eq!(records.len(), first_b + 1, "{:?}", &records[first_b..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_when_the_server_lost_its_data() {
    let mut server = NatsServer::start();
    let a = engine(&server, "lost");
    let claim = acquire_within(&a, "a", 0, Duration::from_secs(20))
        .await
        .unwrap();
    a.append(&claim, 1, lines(&["before"])).await.unwrap();
    let before = read_all(&a, START, 1).await;
    server.restart_empty();
    // The claim is gone with the data: its holder is fenced, a new claim is above the floor.
    let deadline = Instant::now() + Duration::from_secs(20);
    let renewed = loop {
        match a.renew(&claim, LEASE).await {
            Err(EngineError::Unreachable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    assert_eq!(renewed, Err(EngineError::Fenced));
    let claim2 = acquire_within(&a, "a2", claim.epoch, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(claim2.epoch > claim.epoch);
    a.append(&claim2, 1, lines(&["after"])).await.unwrap();
    let records = read_all(&a, before[0].0, 1).await;
    assert_eq!(
        records.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["after"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_pushed_while_the_holder_waits_is_never_lost() {
    let server = NatsServer::start();
    let a = engine(&server, "waiting");
    let b = engine(&server, "waiting");
    let claim = acquire_within(&a, "a", 0, Duration::from_secs(20))
        .await
        .unwrap();
    let pusher = tokio::spawn(async move {
        for i in 0..100 {
            b.push_input(Bytes::from(format!("i{i}"))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(if i % 10 == 0 { 300 } else { 3 })).await;
        }
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 100 && Instant::now() < deadline {
        for input in a
            .take_input(&claim, 256, Duration::from_secs(1))
            .await
            .unwrap()
        {
            got.push(String::from_utf8_lossy(&input).into_owned());
        }
    }
    pusher.await.unwrap();
    let expected: Vec<String> = (0..100).map(|i| format!("i{i}")).collect();
    assert_eq!(got, expected);
}
