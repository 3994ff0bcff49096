//! A virtual user's loops: its setup requests, the closed model (request,
//! answer, think, repeat), the open model (wait for the intended send time,
//! send, measure from the intended time), and the per-thread event-loop lag
//! probe. Each records into its thread's recorder; none of them spawns
//! threads or decides when the run ends (the thread context says).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ThreadCtx, Vu, LAG_PROBE_PERIOD, LATE_THRESHOLD};
use crate::generator::client::{Outcome, VuClient};
use crate::generator::http::Capture;
use crate::generator::scenarios::Planned;
use crate::stats::{duration_us, is_success_status, RunRecorder};

/// Connects the VU (when `connect` is set; the connect is recorded in
/// `connects_into`) and runs its setup requests (recorded as setup).
pub(super) async fn run_setup(
    ctx: &ThreadCtx,
    vu: &mut Vu,
    connect: bool,
    connects_into: &RefCell<RunRecorder>,
) {
    if connect {
        let _ = vu.client.ensure_connected().await;
        vu.client.drain_into(&mut connects_into.borrow_mut());
    }
    let mut last_failed = false;
    while !ctx.circuit.is_open() {
        let Some(p) = vu.script.setup() else { break };
        let (endpoint, outcome, t0, t1) = send(&mut vu.client, &mut vu.capture, p, |_| {}).await;
        let status = {
            let mut rec = ctx.setup_rec.borrow_mut();
            vu.client.drain_into(&mut rec);
            record(&mut rec, endpoint, 0, outcome, t1 - t0, None)
        };
        last_failed = !matches!(status, Some(s) if is_success_status(s));
        vu.script
            .on_response(endpoint, status, &vu.capture, &mut vu.rng);
    }
    if last_failed {
        ctx.setup_failures.set(ctx.setup_failures.get() + 1);
    }
}

/// Opens the VU's connection when the measured phase starts, unless its
/// setup already did. Connecting here rather than before the clock lets the
/// first requests flow as connections come up, as wrk does: a server whose
/// processes share one listening socket then spreads the connections over
/// its processes as it would in use, instead of one idle process accepting
/// a whole burst. The connect is recorded in the measured phase but not in
/// any request's latency.
async fn connect_at_start(ctx: &ThreadCtx, vu: &mut Vu) {
    if !vu.client.is_connected() {
        // A failure is left to the first request, which records it.
        let _ = vu.client.ensure_connected().await;
        vu.client.drain_into(&mut ctx.rec.borrow_mut());
    }
}

/// Sends the planned request `p` (`before_send` sees the send time first):
/// its endpoint, its outcome, the send time and the time the answer ended.
#[inline]
async fn send(
    client: &mut VuClient,
    capture: &mut Capture,
    p: Planned<'_>,
    before_send: impl FnOnce(Instant),
) -> (usize, Outcome, Instant, Instant) {
    capture.body_wanted = p.want_body;
    let sent = Instant::now();
    before_send(sent);
    let outcome = client.request(sent, p.bytes, p.head, capture).await;
    (p.endpoint, outcome, sent, Instant::now())
}

/// Counts a measured request as completed and gives its status to the
/// script; true when the VU stops instead (no response and the circuit
/// is open).
#[inline]
fn completed(ctx: &ThreadCtx, vu: &mut Vu, endpoint: usize, status: Option<u16>) -> bool {
    ctx.completed.set(ctx.completed.get() + 1);
    if status.is_none() && ctx.circuit.is_open() {
        return true;
    }
    vu.script
        .on_response(endpoint, status, &vu.capture, &mut vu.rng);
    false
}

/// Records an outcome; returns the status if there was a response.
#[inline]
fn record(
    rec: &mut RunRecorder,
    endpoint: usize,
    second: usize,
    outcome: Outcome,
    latency: Duration,
    service: Option<Duration>,
) -> Option<u16> {
    match outcome {
        Outcome::Response(info) => {
            rec.record_response(
                endpoint,
                second,
                info.status,
                duration_us(latency),
                service.map(duration_us),
                info.wire_bytes,
            );
            Some(info.status)
        }
        Outcome::Failed(kind) => {
            rec.record_error(endpoint, second, kind);
            None
        }
    }
}

/// A closed-model VU: request, wait for the answer, think, repeat.
pub(super) async fn closed_vu(ctx: &ThreadCtx, mut vu: Vu, offset: Duration, ramped: bool) {
    let start = ctx.start.get();
    if ramped {
        // A ramped VU connects (and logs in) when it starts: the connect
        // belongs to the measured phase (or to the setup, before a settled
        // window opens), its setup requests to the setup.
        let at = ctx.origin.get() + offset;
        if ctx.deadline.get().is_some_and(|d| at >= d) {
            return;
        }
        tokio::time::sleep_until(at.into()).await;
        if ctx.circuit.is_open() {
            return;
        }
        let connects = if at < start { &ctx.setup_rec } else { &ctx.rec };
        run_setup(ctx, &mut vu, true, connects).await;
    }
    connect_at_start(ctx, &mut vu).await;
    // The clock reading of the previous response's end serves the deadline
    // check (two clock reads per request, not three).
    let mut now = Instant::now();
    loop {
        if ctx.deadline.get().is_some_and(|d| now >= d) {
            break;
        }
        if let Some(b) = ctx.budget.get() {
            if b == 0 {
                break;
            }
            ctx.budget.set(Some(b - 1));
        }
        let p = vu.script.next(&mut vu.rng);
        let (endpoint, outcome, t0, t1) = send(&mut vu.client, &mut vu.capture, p, |_| {}).await;
        let status = {
            // Before a settled window opens, requests count as setup.
            let mut rec = if t1 < start {
                ctx.setup_rec.borrow_mut()
            } else {
                ctx.rec.borrow_mut()
            };
            vu.client.drain_into(&mut rec);
            let second = t1.saturating_duration_since(start).as_secs() as usize;
            record(&mut rec, endpoint, second, outcome, t1 - t0, None)
        };
        if completed(ctx, &mut vu, endpoint, status) {
            break;
        }
        now = t1;
        if let Some(think) = vu.script.think(&mut vu.rng) {
            let mut until = Instant::now() + think;
            if let Some(d) = ctx.deadline.get() {
                until = until.min(d);
            }
            tokio::time::sleep_until(until.into()).await;
            now = Instant::now();
        }
    }
}

/// An open-model VU: take the next intended send time, wait for it, send;
/// latency counts from the intended time.
pub(super) async fn open_vu(ctx: &ThreadCtx, mut vu: Vu) {
    let start = ctx.start.get();
    connect_at_start(ctx, &mut vu).await;
    loop {
        let Some(offset) = ctx
            .schedule
            .borrow_mut()
            .as_mut()
            .and_then(|s| s.next_offset())
        else {
            break;
        };
        let intended = start + offset;
        let now = Instant::now();
        if intended > now {
            tokio::time::sleep_until(intended.into()).await;
            let woke = Instant::now();
            let mut rec = ctx.rec.borrow_mut();
            rec.schedule.intended += 1;
            rec.schedule
                .wake_lag
                .saturating_record(duration_us(woke.saturating_duration_since(intended)));
        } else {
            let mut rec = ctx.rec.borrow_mut();
            rec.schedule.intended += 1;
            if now - intended > ctx.max_lag {
                rec.schedule.dropped += 1;
                continue;
            }
        }
        let p = vu.script.next(&mut vu.rng);
        let (endpoint, outcome, sent, done) = send(&mut vu.client, &mut vu.capture, p, |sent| {
            let lag = sent.saturating_duration_since(intended);
            let mut rec = ctx.rec.borrow_mut();
            rec.schedule.sent += 1;
            rec.schedule.send_lag.saturating_record(duration_us(lag));
            if lag > LATE_THRESHOLD {
                rec.schedule.late += 1;
            }
        })
        .await;
        let status = {
            let mut rec = ctx.rec.borrow_mut();
            vu.client.drain_into(&mut rec);
            let second = (done - start).as_secs() as usize;
            record(
                &mut rec,
                endpoint,
                second,
                outcome,
                done - intended,
                Some(done - sent),
            )
        };
        if completed(ctx, &mut vu, endpoint, status) {
            break;
        }
    }
}

/// Measures how late the thread's event loop wakes a timer, every
/// [`LAG_PROBE_PERIOD`], and publishes the thread's completed count.
pub(super) async fn lag_probe(ctx: Rc<ThreadCtx>, counter: Arc<AtomicU64>) {
    let mut next = Instant::now() + LAG_PROBE_PERIOD;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        ctx.lag
            .borrow_mut()
            .saturating_record(duration_us(now.saturating_duration_since(next)));
        counter.store(ctx.completed.get(), Ordering::Relaxed);
        next = now + LAG_PROBE_PERIOD;
    }
}
