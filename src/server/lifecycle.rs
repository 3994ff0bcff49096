//! A worker's life-cycle (running, draining, closing), shared by its accept
//! loops, its connections and readiness.

use std::sync::Arc;

use tokio::sync::watch;

/// Life-cycle of a worker, shared by its accept loops and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// Stop accepting; finish what is in flight.
    Draining,
    /// Drain deadline reached: close everything.
    Closing,
}

/// Handle to start a drain and to observe it (readiness reads it).
#[derive(Clone)]
pub struct Lifecycle {
    tx: Arc<watch::Sender<Phase>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            tx: Arc::new(watch::channel(Phase::Running).0),
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    pub fn is_draining(&self) -> bool {
        self.phase() != Phase::Running
    }

    /// Begins the drain (idempotent).
    pub fn drain(&self) {
        self.tx.send_if_modified(|p| {
            let changed = *p == Phase::Running;
            if changed {
                *p = Phase::Draining;
            }
            changed
        });
    }

    /// Resolves once a drain has started.
    pub async fn wait_draining(&self) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Running).await;
    }

    pub(super) fn close_all(&self) {
        self.tx.send_replace(Phase::Closing);
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }
}
