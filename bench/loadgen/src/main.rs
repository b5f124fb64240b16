//! Load generator for the websocketd benchmarks (see docs/benchmarks.md).
//!
//! One subcommand per scenario shape. Each prints exactly one JSON object on stdout with
//! its metrics, `client_cpu_s` (user + system time of this process) and `wall_s`. It runs
//! on a single-threaded runtime so that it costs less CPU than the server it measures; the
//! CPU figure lets a reader check that. On failure the object carries an `"error"` field
//! and the exit status is non-zero.

mod args;
mod deflate;
mod fanout;
mod h2;
mod h2io;
mod report;
mod scenarios;
mod soak;
mod tls;
mod util;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use args::Args;
use report::Report;
use util::Error;

const USAGE: &str = "usage: loadgen SCENARIO --url ws://127.0.0.1:PORT/ [options]
       loadgen SCENARIO --url wss://127.0.0.1:PORT/ --ca CA.pem [options]

scenarios and their options (defaults in brackets):
  handshake        --concurrency N [1] --count M [1000]
  echo-latency     --count N [20000] --size B [64]
  echo-throughput  --connections N [1] --size B [64] --window W [64] --seconds S [5]
  push             --expect-lines N
  log-stream       --expect-lines N --deflate 0|1 [0]
  binary           --size B [65536] --in-flight K [1] --count M [1000] --stall-seconds S [5]
  scale            --connections N [1000] --parallel P [200] --hold-seconds S [60]
  sustained        --connections N [50] --rate R [100] --seconds S [10]
  backpressure     --rate R [1000] --seconds S [10] --drain D [5]
  churn            --concurrency N [50] --count M [1000] --wait-ms W [5000]
  slowloris        --connections N [2000] --seconds S [30] --interval-ms I [1000]
  pingflood        --count N [1000000] --size B [125] --stall-seconds S [10] --hold-seconds S [5]
  fanout           --connections N [100] --parallel P [200] --sources K [1]
                   --seconds S [5] --warmup W [1]   (broadcast: N receivers, one program)
  idle             --connections N [10000] --parallel P [200] --sources K [1]
                   --hold-seconds S [60]            (broadcast: N listening connections)
  h2-handshake     --concurrency N [1] --count M [1000]
  h2-scale         --connections N [1000] --streams S [100] --parallel P [100] --hold-seconds S [60]
the h2-* scenarios run WebSockets over HTTP/2 (RFC 8441 extended CONNECT): h2-handshake
on one connection opened before the clock starts, h2-scale with S streams a connection;
ws:// URLs use plain-text HTTP/2 (prior knowledge), wss:// URLs TLS with ALPN h2.
every scenario also takes --max-seconds T [300], a bound on the whole run.
with wss://, --ca names a PEM file of the CA certificates to trust (the only ones
trusted); every connection makes a full TLS handshake (no session resumption).";

fn main() -> ExitCode {
    let started = Instant::now();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let scenario = argv.first().cloned().unwrap_or_default();

    let outcome = Args::parse(&argv[argv.len().min(1)..]).and_then(|args| run(&scenario, args));
    let (mut report, code) = match outcome {
        Ok(report) => (report, ExitCode::SUCCESS),
        Err(e) => {
            let mut report = Report::new(&scenario);
            report.text("error", &e.to_string());
            (report, ExitCode::FAILURE)
        }
    };
    if let Some(tls) = tls::negotiated() {
        report.text("tls", &tls);
    }
    report.num("client_cpu_s", util::cpu_seconds());
    report.num("wall_s", started.elapsed().as_secs_f64());
    println!("{}", report.render());
    code
}

fn run(scenario: &str, args: Args) -> Result<Report, Error> {
    if matches!(scenario, "" | "-h" | "--help" | "help") {
        eprintln!("{USAGE}");
        return Err(Error::new("no scenario given"));
    }
    let max = Duration::from_secs_f64(args.f64("max-seconds", 300.0)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let work = async {
            match scenario {
                "handshake" => scenarios::handshake(&args).await,
                "echo-latency" => scenarios::echo_latency(&args).await,
                "echo-throughput" => scenarios::echo_throughput(&args).await,
                "push" => scenarios::push(&args).await,
                "log-stream" => deflate::log_stream(&args).await,
                "binary" => scenarios::binary(&args).await,
                "scale" => scenarios::scale(&args).await,
                "sustained" => scenarios::sustained(&args).await,
                "backpressure" => scenarios::backpressure(&args).await,
                "churn" => soak::churn(&args).await,
                "slowloris" => soak::slowloris(&args).await,
                "pingflood" => soak::pingflood(&args).await,
                "fanout" => fanout::fanout(&args).await,
                "idle" => fanout::idle(&args).await,
                "h2-handshake" => h2::handshake(&args).await,
                "h2-scale" => h2::scale(&args).await,
                other => {
                    eprintln!("{USAGE}");
                    Err(Error::new(format!("unknown scenario {other:?}")))
                }
            }
        };
        match tokio::time::timeout(max, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(format!(
                "scenario did not finish within --max-seconds {}",
                max.as_secs_f64()
            ))),
        }
    })
}
