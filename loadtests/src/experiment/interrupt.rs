//! Stopping a long experiment with a signal. The first SIGINT or SIGTERM
//! lets the cell in progress finish (its run is kept), then the runner
//! returns [`Interrupted`] like any other error: the server, the private
//! PostgreSQL and Redis, the cgroups and the dropped indexes are undone by
//! the same drops as on an error, and `--resume` runs the missing cells. A
//! second signal exits at once (status 128 + signal); so does a runner
//! killed outright, and then the processes it started get a signal of their
//! own from the kernel ([`crate::subprocess::tie_to_quizload`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use nix::sys::signal::Signal;

/// The runner stopped between cells because a signal asked it to.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: Signal,
    /// Cells run (and kept) by this invocation.
    pub cells: usize,
    /// The results folder.
    pub out: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped by {} after {} cells of this run: the runs so far are kept in {}; \
             rerun the same command with --resume to run the rest",
            self.signal, self.cells, self.out
        )
    }
}

impl std::error::Error for Interrupted {}

impl Interrupted {
    /// The shell's status for a process ended by the signal.
    pub fn exit_status(&self) -> u8 {
        128 + self.signal as u8
    }
}

/// The signal received (0: none yet).
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers (once per process): the first SIGINT/SIGTERM is
/// recorded for [`received`], a second one exits the process.
pub fn install() -> std::io::Result<()> {
    if RECEIVED.get().is_some() {
        return Ok(());
    }
    let received = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let n = signal as i32;
        // Registered first, so it sees `armed` before this signal sets it.
        signal_hook::flag::register_conditional_shutdown(n, 128 + n, armed.clone())?;
        signal_hook::flag::register(n, armed.clone())?;
        signal_hook::flag::register_usize(n, received.clone(), n as usize)?;
    }
    let _ = RECEIVED.set(received);
    Ok(())
}

/// The signal that asked the runner to stop, if one has.
pub fn received() -> Option<Signal> {
    let n = RECEIVED.get()?.load(Ordering::SeqCst);
    (n != 0).then(|| Signal::try_from(n as i32).ok()).flatten()
}

/// `Err(Interrupted)` once a signal has asked the runner to stop (`cells`:
/// run so far by this invocation, `out`: the results folder).
pub fn check(cells: usize, out: &std::path::Path) -> Result<(), Interrupted> {
    match received() {
        Some(signal) => Err(Interrupted {
            signal,
            cells,
            out: out.display().to_string(),
        }),
        None => Ok(()),
    }
}
