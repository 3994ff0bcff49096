//! A virtual user's connection to the target: connect on demand, keep-alive
//! reuse, reconnect after `Connection: close`, the request timeout, one retry
//! when a reused connection turns out to have been closed by the server, and
//! the classification of failures into [`TransportError`] kinds.
//!
//! Request timeouts do not use a timer per request: each VU has a
//! [`TimeoutSlot`] holding its current deadline, and one [`Watchdog`] task per
//! thread scans the slots a few times per second of timeout and wakes the
//! expired ones (wrk checks timeouts the same way). That keeps the timer
//! wheel, its lock and a clock read off the hot path; a timeout fires at most
//! one watchdog period late.
//!
//! A run's VUs share one [`ConnectCircuit`]: when no connect of the run has
//! succeeded yet and [`ConnectCircuit::limit_for`] of them have failed, it
//! opens and the VUs stop, so a target where nothing listens ends the run
//! at once instead of being hammered with connects for its whole duration.
//! After the first successful connect it never opens: a server that dies
//! mid-run is measured as errors.
//!
//! It keeps a small log of the connects and retries it made, which the engine
//! drains into the thread's [`RunRecorder`] after each request (never holding
//! the recorder across an await), but records nothing about requests: the
//! engine decides what a request's latency is (from the actual send in the
//! closed model, from the intended send in the open model).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::http::{Capture, Connection, ExchangeError, ResponseInfo};
use crate::stats::{RunRecorder, TransportError};

/// Result of one request as seen by a virtual user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Response(ResponseInfo),
    Failed(TransportError),
}

/// The failure kind of an I/O error: refused and reset are told apart from
/// the rest; `connecting` tells a failed connect from a failed exchange.
pub fn classify(e: &io::Error, connecting: bool) -> TransportError {
    use io::ErrorKind as K;
    match (e.kind(), connecting) {
        (K::ConnectionRefused, _) => TransportError::Refused,
        (K::TimedOut, _) => TransportError::Timeout,
        (K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof, false) => {
            TransportError::Reset
        }
        (_, true) => TransportError::Connect,
        (_, false) => TransportError::Io,
    }
}

/// The run's connect circuit, shared by all VUs of all threads: it opens
/// when no connect has succeeded and `limit` have failed, and can no
/// longer open once one has succeeded. Touched only when a VU connects.
#[derive(Debug)]
pub struct ConnectCircuit {
    limit: u64,
    succeeded: AtomicBool,
    failures: AtomicU64,
    open: AtomicBool,
    first_error: OnceLock<String>,
}

/// Why a run's circuit opened: the engine's error when it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitTrip {
    /// Where the VUs connected.
    pub addr: SocketAddr,
    /// Connects that failed, none having succeeded.
    pub failures: u64,
    /// The first failure's error.
    pub first_error: String,
    /// The requests that failed, by endpoint (setup ones marked so).
    pub steps: Vec<(String, u64)>,
}

impl std::fmt::Display for CircuitTrip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no connection to {} could be opened: {} connects failed and none succeeded (first: {})",
            self.addr, self.failures, self.first_error
        )?;
        if !self.steps.is_empty() {
            let steps: Vec<String> = self
                .steps
                .iter()
                .map(|(name, n)| format!("{name} ({n} failed)"))
                .collect();
            write!(f, "; requests: {}", steps.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for CircuitTrip {}

impl ConnectCircuit {
    /// The failed connects, none having succeeded, that open the circuit
    /// of a run with `vus` virtual users: two per VU, at least 20.
    pub fn limit_for(vus: usize) -> u64 {
        (2 * vus as u64).max(20)
    }

    /// A closed circuit that opens after `limit` failed connects.
    pub fn new(limit: u64) -> Self {
        Self {
            limit: limit.max(1),
            succeeded: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            open: AtomicBool::new(false),
            first_error: OnceLock::new(),
        }
    }

    fn connected(&self) {
        if !self.succeeded.load(Ordering::Relaxed) {
            self.succeeded.store(true, Ordering::Relaxed);
        }
    }

    fn failed(&self, error: &dyn std::fmt::Display) {
        if self.succeeded.load(Ordering::Relaxed) {
            return;
        }
        self.first_error.get_or_init(|| error.to_string());
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.limit && !self.succeeded.load(Ordering::Relaxed) {
            self.open.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the circuit opened: the VUs are to stop.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Why it opened, if it did (`steps`: the requests that failed).
    pub fn trip(&self, addr: SocketAddr, steps: Vec<(String, u64)>) -> Option<CircuitTrip> {
        self.is_open().then(|| CircuitTrip {
            addr,
            failures: self.failures.load(Ordering::Relaxed),
            first_error: self.first_error.get().cloned().unwrap_or_default(),
            steps,
        })
    }
}

/// A VU's current request deadline, shared with the thread's [`Watchdog`].
#[derive(Debug, Default)]
pub struct TimeoutSlot {
    deadline: Cell<Option<Instant>>,
    expired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Per-thread scanner of the VUs' [`TimeoutSlot`]s.
#[derive(Debug, Default)]
pub struct Watchdog {
    slots: RefCell<Vec<Rc<TimeoutSlot>>>,
}

impl Watchdog {
    /// A new slot watched by this watchdog.
    pub fn register(&self) -> Rc<TimeoutSlot> {
        let slot = Rc::new(TimeoutSlot::default());
        self.slots.borrow_mut().push(slot.clone());
        slot
    }

    /// The scan period for a request timeout: a twentieth of it, between
    /// 1 ms and 50 ms.
    pub fn period_for(timeout: Duration) -> Duration {
        (timeout / 20).clamp(Duration::from_millis(1), Duration::from_millis(50))
    }

    /// Expires every slot whose deadline has passed at `now` and wakes its
    /// request. Returns how many expired.
    pub fn scan(&self, now: Instant) -> usize {
        let mut n = 0;
        for s in self.slots.borrow().iter() {
            if s.deadline.get().is_some_and(|d| now >= d) {
                s.deadline.set(None);
                s.expired.set(true);
                if let Some(w) = s.waker.borrow_mut().take() {
                    w.wake();
                }
                n += 1;
            }
        }
        n
    }

    /// Scans every `period` forever (spawn it on the thread's `LocalSet`).
    pub async fn run(self: Rc<Self>, period: Duration) {
        let mut next = Instant::now() + period;
        loop {
            tokio::time::sleep_until(next.into()).await;
            let now = Instant::now();
            self.scan(now);
            next = now + period;
        }
    }
}

/// Polls a future until it completes or its slot expires.
struct WithDeadline<'a, F> {
    fut: Pin<&'a mut F>,
    slot: &'a TimeoutSlot,
}

impl<F: Future> Future for WithDeadline<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.slot.expired.get() {
            return Poll::Ready(None);
        }
        match self.fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => {
                let mut w = self.slot.waker.borrow_mut();
                match &*w {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// Per-VU connection state.
#[derive(Debug)]
pub struct VuClient {
    addr: SocketAddr,
    timeout: Duration,
    slot: Rc<TimeoutSlot>,
    circuit: Arc<ConnectCircuit>,
    conn: Option<Connection>,
    /// Connect durations since the last [`VuClient::drain_into`]
    /// (preallocated; a request makes at most two).
    connect_log: Vec<Duration>,
    stale_retries: u64,
}

impl VuClient {
    /// A client for `addr` whose requests fail with
    /// [`TransportError::Timeout`] after `timeout`, watched by `watchdog`
    /// (whose [`Watchdog::run`] must be running on the same thread), its
    /// connects counted by the run's `circuit`.
    pub fn new(
        addr: SocketAddr,
        timeout: Duration,
        watchdog: &Watchdog,
        circuit: Arc<ConnectCircuit>,
    ) -> Self {
        Self {
            addr,
            timeout,
            slot: watchdog.register(),
            circuit,
            conn: None,
            connect_log: Vec::with_capacity(4),
            stale_retries: 0,
        }
    }

    /// Moves the connects and retries logged since the last call into `rec`.
    pub fn drain_into(&mut self, rec: &mut RunRecorder) {
        for d in self.connect_log.drain(..) {
            rec.record_connect(d);
        }
        rec.stale_retries += std::mem::take(&mut self.stale_retries);
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Opens the connection now if there is none (used before the measured
    /// phase so that the first request does not pay for it).
    pub async fn ensure_connected(&mut self) -> Result<(), TransportError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let t0 = Instant::now();
        match tokio::time::timeout(self.timeout, Connection::connect(self.addr)).await {
            Ok(Ok(c)) => {
                self.circuit.connected();
                self.connect_log.push(t0.elapsed());
                self.conn = Some(c);
                Ok(())
            }
            Ok(Err(e)) => {
                self.circuit.failed(&e);
                Err(classify(&e, true))
            }
            Err(_) => {
                self.circuit.failed(&format_args!(
                    "no connection within {:?} (timed out)",
                    self.timeout
                ));
                Err(TransportError::Timeout)
            }
        }
    }

    /// Sends `request` and reads its response within the timeout counted
    /// from `started` (the caller's clock reading, usually just taken),
    /// (re)connecting first when needed.
    pub async fn request(
        &mut self,
        started: Instant,
        request: &[u8],
        head_request: bool,
        capture: &mut Capture,
    ) -> Outcome {
        let slot = self.slot.clone();
        slot.expired.set(false);
        slot.deadline.set(Some(started + self.timeout));
        let result = {
            let fut = pin!(self.request_inner(request, head_request, capture));
            WithDeadline { fut, slot: &slot }.await
        };
        slot.deadline.set(None);
        match result {
            Some(outcome) => outcome,
            None => {
                if self.conn.is_none() {
                    // The deadline passed while connecting.
                    self.circuit.failed(&format_args!(
                        "no connection within {:?} (timed out)",
                        self.timeout
                    ));
                }
                // The connection's state is unknown: never reuse it.
                self.conn = None;
                Outcome::Failed(TransportError::Timeout)
            }
        }
    }

    async fn request_inner(
        &mut self,
        request: &[u8],
        head_request: bool,
        capture: &mut Capture,
    ) -> Outcome {
        let mut retried = false;
        loop {
            if self.conn.is_none() {
                let t0 = Instant::now();
                match Connection::connect(self.addr).await {
                    Ok(c) => {
                        self.circuit.connected();
                        self.connect_log.push(t0.elapsed());
                        self.conn = Some(c);
                    }
                    Err(e) => {
                        self.circuit.failed(&e);
                        return Outcome::Failed(classify(&e, true));
                    }
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            let reused = conn.served > 0;
            match conn.exchange(request, head_request, capture).await {
                Ok(info) => {
                    if !info.keep_alive {
                        self.conn = None;
                    }
                    return Outcome::Response(info);
                }
                Err(ExchangeError::Io {
                    before_response,
                    error,
                }) => {
                    self.conn = None;
                    if before_response && reused && !retried {
                        // The server closed an idle keep-alive connection
                        // just as we reused it: what every HTTP client
                        // retries once.
                        retried = true;
                        self.stale_retries += 1;
                        continue;
                    }
                    return Outcome::Failed(classify(&error, false));
                }
                Err(ExchangeError::Protocol(_)) => {
                    self.conn = None;
                    return Outcome::Failed(TransportError::Protocol);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_io_errors() {
        let e = |k| io::Error::from(k);
        use io::ErrorKind as K;
        assert_eq!(
            classify(&e(K::ConnectionRefused), true),
            TransportError::Refused
        );
        assert_eq!(
            classify(&e(K::ConnectionReset), false),
            TransportError::Reset
        );
        assert_eq!(classify(&e(K::UnexpectedEof), false), TransportError::Reset);
        assert_eq!(classify(&e(K::BrokenPipe), false), TransportError::Reset);
        assert_eq!(classify(&e(K::TimedOut), true), TransportError::Timeout);
        assert_eq!(
            classify(&e(K::ConnectionReset), true),
            TransportError::Connect
        );
        assert_eq!(classify(&e(K::Other), false), TransportError::Io);
    }

    #[test]
    fn circuit_opens_only_before_a_success() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let c = ConnectCircuit::new(3);
        c.failed(&refused);
        c.failed(&"second");
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(!c.is_open() && c.trip(addr, vec![]).is_none());
        c.failed(&"third");
        let trip = c
            .trip(addr, vec![("GET /x".into(), 3)])
            .expect("open after 3");
        assert_eq!(trip.failures, 3);
        assert_eq!(trip.first_error, refused.to_string());
        let text = trip.to_string();
        assert!(
            text.contains("127.0.0.1:9") && text.contains("GET /x (3 failed)"),
            "{text}"
        );

        let c = ConnectCircuit::new(3);
        c.failed(&refused);
        c.connected();
        for _ in 0..10 {
            c.failed(&refused);
        }
        assert!(!c.is_open(), "a server that answered once is measured");
        assert_eq!(ConnectCircuit::limit_for(1), 20);
        assert_eq!(ConnectCircuit::limit_for(50), 100);
    }
}
