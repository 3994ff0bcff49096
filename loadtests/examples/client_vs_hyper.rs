//! quizload's HTTP/1 client against hyper's (`client::conn::http1`) on the
//! same target, side by side: the measurement behind the exception written
//! down in `docs/exceptions.md`.
//!
//! Each client runs the same closed loop: `--connections` keep-alive
//! connections over `--threads` threads (a current-thread runtime each, as
//! the engine's workers), every connection sending `GET` after `GET` for
//! `--duration` and recording each request's latency in an HDR histogram,
//! as the engine does. Trials alternate which client goes first. The
//! figures are requests per second and the client threads' CPU time per
//! request (`getrusage(RUSAGE_THREAD)`, so the in-process target's threads
//! are not counted).
//!
//! ```text
//! cargo run --release -p loadtests --example client_vs_hyper -- --trials 5
//! cargo run --release -p loadtests --example client_vs_hyper -- --url http://127.0.0.1:8080/
//! ```
//!
//! Without `--url` it starts quizload's trivial target in-process
//! (`--target-threads`, default 1).

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use loadtests::calibrate::target::TrivialTarget;
use loadtests::generator::http::{Capture, Connection, HttpUrl, RequestBuilder};
use loadtests::generator::sysmon::thread_cpu;
use loadtests::units::parse_duration;
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
struct Args {
    /// Target URL (plain http); default: quizload's trivial target in-process.
    #[arg(long)]
    url: Option<String>,
    /// Threads of the in-process target.
    #[arg(long, default_value_t = 1)]
    target_threads: usize,
    #[arg(short, long, default_value_t = 50)]
    connections: usize,
    /// Client threads.
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    #[arg(short, long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Trials per client (alternating which goes first).
    #[arg(long, default_value_t = 3)]
    trials: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Quizload,
    Hyper,
}

/// What one client thread measured.
struct ThreadRun {
    requests: u64,
    errors: u64,
    cpu: Duration,
    latency_us: Histogram<u64>,
}

/// One client's run over all its threads.
#[derive(Debug)]
struct RunFigures {
    rps: f64,
    cpu_us_per_request: f64,
    errors: u64,
    p99_us: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let _target;
    let (addr, host, path) = match &a.url {
        Some(u) => {
            let url = HttpUrl::parse(u)?;
            (
                url.resolve_blocking()?,
                url.host_header.clone(),
                url.path.clone(),
            )
        }
        None => {
            let t = TrivialTarget::start(a.target_threads)?;
            let addr = t.addr();
            _target = t;
            (addr, addr.to_string(), "/".to_string())
        }
    };
    println!(
        "target http://{addr}{path}, {} connections on {} client thread(s), {:?} per run, {} trials",
        a.connections, a.threads, a.duration, a.trials
    );
    let mut ratios_rps = Vec::new();
    let mut ratios_cpu = Vec::new();
    for trial in 0..a.trials {
        let order = if trial % 2 == 0 {
            [Client::Quizload, Client::Hyper]
        } else {
            [Client::Hyper, Client::Quizload]
        };
        let mut q = None;
        let mut h = None;
        for client in order {
            let f = run(client, addr, &host, &path, &a)?;
            println!(
                "trial {} {:<8} {:>9.0} req/s {:>6.2} µs CPU/req  p99 {:>6} µs  errors {}",
                trial + 1,
                format!("{client:?}"),
                f.rps,
                f.cpu_us_per_request,
                f.p99_us,
                f.errors
            );
            match client {
                Client::Quizload => q = Some(f),
                Client::Hyper => h = Some(f),
            }
        }
        let (q, h) = (q.expect("ran"), h.expect("ran"));
        ratios_rps.push(h.rps / q.rps);
        ratios_cpu.push(h.cpu_us_per_request / q.cpu_us_per_request);
    }
    println!(
        "hyper / quizload, median of {} trials: req/s x{:.3}, CPU per request x{:.3}",
        a.trials,
        median(&mut ratios_rps),
        median(&mut ratios_cpu)
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `client` on `a.threads` threads; all start together.
fn run(
    client: Client,
    addr: SocketAddr,
    host: &str,
    path: &str,
    a: &Args,
) -> anyhow::Result<RunFigures> {
    let threads = a.threads.max(1);
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let conns = a.connections / threads + usize::from(i < a.connections % threads);
            let (start, host, path, duration) = (
                start.clone(),
                host.to_string(),
                path.to_string(),
                a.duration,
            );
            std::thread::spawn(move || {
                client_thread(client, addr, conns, &host, &path, duration, &start)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let runs: Vec<ThreadRun> = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect::<anyhow::Result<_>>()?;
    let wall = began.elapsed().as_secs_f64();
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let cpu: Duration = runs.iter().map(|r| r.cpu).sum();
    let mut latency = Histogram::<u64>::new(3)?;
    for r in &runs {
        latency.add(&r.latency_us)?;
    }
    Ok(RunFigures {
        rps: requests as f64 / wall,
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
        errors: runs.iter().map(|r| r.errors).sum(),
        p99_us: latency.value_at_quantile(0.99),
    })
}

/// One client thread: connects its connections, waits for the others,
/// then loops until `duration` has passed.
fn client_thread(
    client: Client,
    addr: SocketAddr,
    conns: usize,
    host: &str,
    path: &str,
    duration: Duration,
    start: &Barrier,
) -> anyhow::Result<ThreadRun> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut loops = Vec::with_capacity(conns);
        for _ in 0..conns {
            loops.push(Loop::connect(client, addr, host, path).await?);
        }
        start.wait();
        let (cpu0, began) = (cpu_now(), Instant::now());
        let deadline = began + duration;
        let tasks: Vec<_> = loops
            .into_iter()
            .map(|l| tokio::task::spawn_local(l.run(deadline)))
            .collect();
        let mut out = ThreadRun {
            requests: 0,
            errors: 0,
            cpu: Duration::ZERO,
            latency_us: Histogram::new(3)?,
        };
        for t in tasks {
            let (requests, errors, h) = t.await?;
            out.requests += requests;
            out.errors += errors;
            out.latency_us.add(&h)?;
        }
        out.cpu = cpu_now() - cpu0;
        Ok(out)
    })
}

fn cpu_now() -> Duration {
    thread_cpu().map_or(Duration::ZERO, |(u, s)| u + s)
}

/// A connection and what it sends, for one client.
enum Loop {
    Quizload {
        conn: Connection,
        request: Vec<u8>,
    },
    Hyper {
        sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        host: String,
        path: String,
    },
}

impl Loop {
    async fn connect(
        client: Client,
        addr: SocketAddr,
        host: &str,
        path: &str,
    ) -> anyhow::Result<Self> {
        Ok(match client {
            Client::Quizload => Loop::Quizload {
                conn: Connection::connect(addr).await?,
                request: RequestBuilder::new(host, vec![]).build("GET", path, &[], b""),
            },
            Client::Hyper => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::task::spawn_local(conn);
                Loop::Hyper {
                    sender,
                    host: host.to_string(),
                    path: path.to_string(),
                }
            }
        })
    }

    /// Requests until `deadline`: (responses, errors, latency histogram).
    async fn run(mut self, deadline: Instant) -> (u64, u64, Histogram<u64>) {
        let mut h = Histogram::<u64>::new(3).expect("3 significant figures");
        let (mut ok, mut errors) = (0, 0);
        let mut capture = Capture::default();
        loop {
            let t0 = Instant::now();
            if t0 >= deadline {
                break;
            }
            let done = match &mut self {
                Loop::Quizload { conn, request } => conn
                    .exchange(request, false, &mut capture)
                    .await
                    .map(|r| r.status == 200)
                    .unwrap_or(false),
                Loop::Hyper { sender, host, path } => {
                    hyper_get(sender, host, path).await.unwrap_or(false)
                }
            };
            let _ = h.record(t0.elapsed().as_micros() as u64);
            if done {
                ok += 1;
            } else {
                errors += 1;
                break;
            }
        }
        (ok, errors, h)
    }
}

/// One GET through hyper, its body read to the end; whether it was a 200.
async fn hyper_get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> anyhow::Result<bool> {
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "quizload")
        .header(hyper::header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
        .context("request")?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let ok = response.status() == hyper::StatusCode::OK;
    response.into_body().collect().await?;
    Ok(ok)
}
