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
//! It keeps a small log of the connects and retries it made, which the engine
//! drains into the thread's [`RunRecorder`] after each request (never holding
//! the recorder across an await), but records nothing about requests: the
//! engine decides what a request's latency is (from the actual send in the
//! closed model, from the intended send in the open model).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
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
    conn: Option<Connection>,
    /// Connect durations since the last [`VuClient::drain_into`]
    /// (preallocated; a request makes at most two).
    connect_log: Vec<Duration>,
    stale_retries: u64,
}

impl VuClient {
    /// A client for `addr` whose requests fail with
    /// [`TransportError::Timeout`] after `timeout`, watched by `watchdog`
    /// (whose [`Watchdog::run`] must be running on the same thread).
    pub fn new(addr: SocketAddr, timeout: Duration, watchdog: &Watchdog) -> Self {
        Self {
            addr,
            timeout,
            slot: watchdog.register(),
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
                self.connect_log.push(t0.elapsed());
                self.conn = Some(c);
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(TransportError::Connect),
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
                        self.connect_log.push(t0.elapsed());
                        self.conn = Some(c);
                    }
                    Err(_) => return Outcome::Failed(TransportError::Connect),
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
                    before_response, ..
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
                    return Outcome::Failed(TransportError::Io);
                }
                Err(ExchangeError::Protocol(_)) => {
                    self.conn = None;
                    return Outcome::Failed(TransportError::Protocol);
                }
            }
        }
    }
}
