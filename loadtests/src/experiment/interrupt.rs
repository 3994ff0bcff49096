//! Stopping a long experiment with a signal. The first SIGINT or SIGTERM
//! lets the cell in progress finish (its run is kept), then the runner
//! returns [`Interrupted`] like any other error: the server, the private
//! PostgreSQL and Redis, the cgroups and the dropped indexes are undone by
//! the same drops as on an error, and `--resume` runs the missing cells. A
//! second signal exits at once (status 128 + signal); so does a runner
//! killed outright, and then the processes it started get a signal of their
//! own from the kernel ([`tie_to_runner`]).

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

/// Ties the process `cmd` starts to the runner: it runs in its own process
/// group, so a terminal's Ctrl-C reaches the runner alone (which finishes
/// the cell, then stops it); and the kernel sends it `signal` if the runner
/// dies (`PR_SET_PDEATHSIG`: kept across `exec`, and across `setpriv`'s
/// change of user with `--pdeathsig keep`), so that a runner killed
/// outright leaves no server or database behind.
pub fn tie_to_runner(cmd: &mut std::process::Command, signal: Signal) {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0);
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only async-signal-safe functions (prctl, getppid, kill).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal)?;
            // The runner died before the prctl: nobody will signal us.
            if nix::unistd::getppid().as_raw() != parent {
                let _ = nix::sys::signal::raise(signal);
            }
            Ok(())
        });
    }
}
