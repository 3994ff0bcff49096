//! A small load driver on raw HTTP/1.1 over tokio TCP streams, so that
//! every failure is classified exactly (refused, reset, closed without a
//! response, timeout) and attributed to the worker that served the
//! connection before.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// connect(2) refused: no socket listening.
    Refused,
    /// The connection was reset (RST) or the write hit a closed socket.
    Reset,
    /// The server closed the connection before a complete response.
    Closed,
    Timeout,
    Other,
}

/// One request and what became of it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub started: Instant,
    /// When connect() returned, for a request on a new connection: the
    /// connection was then in the server's accept queue.
    pub connected: Option<Instant>,
    pub finished: Instant,
    pub status: Option<u16>,
    pub failure: Option<Failure>,
    /// X-Worker-Pid of the response.
    pub pid: Option<u32>,
    /// X-Worker-Id of the response.
    pub worker_id: Option<u32>,
    /// The worker that served the previous response on this connection
    /// (None on a new connection).
    pub conn_pid: Option<u32>,
    /// The response body, when the spec keeps bodies.
    pub body: Option<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none() && self.status.is_some_and(|s| s < 500)
    }

    /// The server had the request's connection (accepted, or queued in the
    /// kernel) before `t`, and for a kept-alive connection the request was
    /// sent before `t`.
    pub fn accepted_before(&self, t: Instant) -> bool {
        match (self.connected, self.conn_pid) {
            (Some(c), _) => c < t,
            (None, Some(_)) => self.started < t,
            (None, None) => false,
        }
    }
}

/// One kind of request the driver sends.
#[derive(Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn get(path: &str) -> Request {
        Request {
            method: "GET",
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn post_json(path: &str, token: &str, body: &str) -> Request {
        Request {
            method: "POST",
            path: path.to_string(),
            headers: vec![
                ("Authorization".into(), format!("Bearer {token}")),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    fn bytes(&self, addr: SocketAddr, keep_alive: bool) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.body.len()
        );
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

pub struct LoadSpec {
    pub addr: SocketAddr,
    /// Concurrent connections.
    pub connections: usize,
    /// Keep connections open across requests (else one request per connection).
    pub keep_alive: bool,
    pub request: Request,
    /// Pause between two requests of one connection.
    pub pause: Duration,
    /// Keep each response body in its outcome.
    pub keep_body: bool,
}

impl LoadSpec {
    /// `connections` clients sending `GET path`, keep-alive or not.
    pub fn get(addr: SocketAddr, connections: usize, keep_alive: bool, path: &str) -> LoadSpec {
        LoadSpec {
            addr,
            connections,
            keep_alive,
            request: Request::get(path),
            pause: Duration::ZERO,
            keep_body: false,
        }
    }

    /// `connections` keep-alive clients grading free text (slow requests:
    /// they run on the CPU pool, at GRADE_COST).
    pub fn grading(addr: SocketAddr, connections: usize, token: &str) -> LoadSpec {
        LoadSpec {
            request: Request::post_json("/api/v1/grade", token, r#"{"text":"select from join"}"#),
            ..LoadSpec::get(addr, connections, true, "")
        }
    }
}

/// A running load; `stop` ends it and returns every outcome.
pub struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(spec: LoadSpec) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let spec = Arc::new(spec);
        let tasks = (0..spec.connections)
            .map(|_| {
                let (stop, outcomes, spec) = (stop.clone(), outcomes.clone(), spec.clone());
                tokio::spawn(async move { client(spec, stop, outcomes).await })
            })
            .collect();
        Load {
            stop,
            outcomes,
            tasks,
        }
    }

    /// Outcomes so far.
    pub fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests have completed (or `limit`).
    pub async fn wait_requests(&self, n: usize, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        loop {
            let done = self.outcomes.lock().unwrap().len();
            if done >= n || Instant::now() >= until {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until a response came from worker `pid` (or `limit`); whether
    /// it did.
    pub async fn wait_served_by(&self, pid: u32, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self
                .outcomes
                .lock()
                .unwrap()
                .iter()
                .any(|o| o.pid == Some(pid))
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        Report { outcomes }
    }
}

pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn ok(&self) -> usize {
        self.outcomes.iter().filter(|o| o.ok()).count()
    }

    pub fn failed(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| !o.ok()).collect()
    }

    pub fn pids(&self) -> std::collections::BTreeSet<u32> {
        self.outcomes.iter().filter_map(|o| o.pid).collect()
    }

    pub fn worker_ids(&self) -> std::collections::BTreeSet<u32> {
        self.outcomes.iter().filter_map(|o| o.worker_id).collect()
    }

    /// A one-line summary for assertion messages.
    pub fn summary(&self) -> String {
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for o in &self.outcomes {
            let k = match (o.failure, o.status) {
                (Some(f), _) => format!("{f:?}"),
                (None, Some(s)) => s.to_string(),
                (None, None) => "none".into(),
            };
            *kinds.entry(k).or_default() += 1;
        }
        format!(
            "{} requests, {} ok; by outcome {kinds:?}; pids {:?}",
            self.outcomes.len(),
            self.ok(),
            self.pids()
        )
    }
}

async fn client(spec: Arc<LoadSpec>, stop: Arc<AtomicBool>, outcomes: Arc<Mutex<Vec<Outcome>>>) {
    let request = spec.request.bytes(spec.addr, spec.keep_alive);
    let mut conn: Option<(TcpStream, Option<u32>)> = None;
    let mut buf = Vec::with_capacity(8192);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let mut connected = None;
        let (mut stream, conn_pid) = match conn.take() {
            Some(c) => c,
            None => {
                let limit = Duration::from_secs(10);
                match tokio::time::timeout(limit, TcpStream::connect(spec.addr)).await {
                    Ok(Ok(s)) => {
                        connected = Some(Instant::now());
                        let _ = s.set_nodelay(true);
                        (s, None)
                    }
                    Ok(Err(e)) => {
                        record(&outcomes, started, None, classify(&e), None);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Err(_) => {
                        record(&outcomes, started, None, Failure::Timeout, None);
                        continue;
                    }
                }
            }
        };
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            exchange(&mut stream, &request, &mut buf, spec.keep_body),
        )
        .await;
        match result {
            Ok(Ok(resp)) => {
                outcomes.lock().unwrap().push(Outcome {
                    started,
                    connected,
                    finished: Instant::now(),
                    status: Some(resp.status),
                    failure: None,
                    pid: resp.pid,
                    worker_id: resp.worker_id,
                    conn_pid,
                    body: resp.body,
                });
                if spec.keep_alive && !resp.close {
                    conn = Some((stream, resp.pid.or(conn_pid)));
                }
            }
            Ok(Err(failure)) => record(&outcomes, started, connected, failure, conn_pid),
            Err(_) => record(&outcomes, started, connected, Failure::Timeout, conn_pid),
        }
        if !spec.pause.is_zero() {
            tokio::time::sleep(spec.pause).await;
        }
    }
}

/// A request that got no response.
fn record(
    outcomes: &Mutex<Vec<Outcome>>,
    started: Instant,
    connected: Option<Instant>,
    failure: Failure,
    conn_pid: Option<u32>,
) {
    outcomes.lock().unwrap().push(Outcome {
        started,
        connected,
        finished: Instant::now(),
        status: None,
        failure: Some(failure),
        pid: None,
        worker_id: None,
        conn_pid,
        body: None,
    });
}

fn classify(e: &std::io::Error) -> Failure {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => Failure::Refused,
        ConnectionReset | BrokenPipe | ConnectionAborted => Failure::Reset,
        UnexpectedEof => Failure::Closed,
        TimedOut => Failure::Timeout,
        _ => Failure::Other,
    }
}

struct Parsed {
    status: u16,
    pid: Option<u32>,
    worker_id: Option<u32>,
    close: bool,
    body: Option<String>,
}

async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    keep_body: bool,
) -> Result<Parsed, Failure> {
    stream.write_all(request).await.map_err(|e| classify(&e))?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| classify(&e))?;
        if n == 0 {
            return Err(Failure::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Failure::Other)?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(Failure::Other)?;
    let mut length = 0usize;
    let mut parsed = Parsed {
        status,
        pid: None,
        worker_id: None,
        close: false,
        body: None,
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse().map_err(|_| Failure::Other)?,
            "connection" => parsed.close = v.eq_ignore_ascii_case("close"),
            "x-worker-pid" => parsed.pid = v.parse().ok(),
            "x-worker-id" => parsed.worker_id = v.parse().ok(),
            "transfer-encoding" => return Err(Failure::Other),
            _ => {}
        }
    }
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.map_err(|e| classify(&e))?;
        if n == 0 {
            return Err(Failure::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if keep_body {
        parsed.body = Some(String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string());
    }
    Ok(parsed)
}
