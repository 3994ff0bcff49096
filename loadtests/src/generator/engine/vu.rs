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
use crate::generator::client::Outcome;
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
        let (endpoint, outcome, latency) = {
            let Some(p) = vu.script.setup() else { break };
            let endpoint = p.endpoint;
            vu.capture.body_wanted = p.want_body;
            let head = p.head;
            let t0 = Instant::now();
            let outcome = vu.client.request(t0, p.bytes, head, &mut vu.capture).await;
            (endpoint, outcome, t0.elapsed())
        };
        let status = {
            let mut rec = ctx.setup_rec.borrow_mut();
            vu.client.drain_into(&mut rec);
            record(&mut rec, endpoint, 0, outcome, latency, None)
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
        let (endpoint, outcome, t0, t1) = {
            let p = vu.script.next(&mut vu.rng);
            let endpoint = p.endpoint;
            vu.capture.body_wanted = p.want_body;
            let head = p.head;
            let t0 = Instant::now();
            let outcome = vu.client.request(t0, p.bytes, head, &mut vu.capture).await;
            (endpoint, outcome, t0, Instant::now())
        };
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
        ctx.completed.set(ctx.completed.get() + 1);
        if status.is_none() && ctx.circuit.is_open() {
            break;
        }
        vu.script
            .on_response(endpoint, status, &vu.capture, &mut vu.rng);
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
        let (endpoint, outcome, sent, done) = {
            let p = vu.script.next(&mut vu.rng);
            let endpoint = p.endpoint;
            vu.capture.body_wanted = p.want_body;
            let head = p.head;
            let sent = Instant::now();
            {
                let lag = sent.saturating_duration_since(intended);
                let mut rec = ctx.rec.borrow_mut();
                rec.schedule.sent += 1;
                rec.schedule.send_lag.saturating_record(duration_us(lag));
                if lag > LATE_THRESHOLD {
                    rec.schedule.late += 1;
                }
            }
            let outcome = vu
                .client
                .request(sent, p.bytes, head, &mut vu.capture)
                .await;
            (endpoint, outcome, sent, Instant::now())
        };
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
        ctx.completed.set(ctx.completed.get() + 1);
        if status.is_none() && ctx.circuit.is_open() {
            break;
        }
        vu.script
            .on_response(endpoint, status, &vu.capture, &mut vu.rng);
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
