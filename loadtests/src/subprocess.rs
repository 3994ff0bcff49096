//! Processes quizload starts (the server under test, PostgreSQL, Redis, a
//! load tool) tied to it, so that stopping quizload never leaves one behind
//! and a terminal's Ctrl-C reaches quizload alone.

use std::process::Command;

use nix::sys::signal::Signal;

/// Ties the process `cmd` starts to quizload: it runs in its own process
/// group, so a terminal's Ctrl-C reaches quizload alone (an experiment then
/// finishes the cell in progress; a load tool interrupted mid-cell would
/// report a short run as a whole one); and the kernel sends it `on_orphan`
/// if quizload dies (`PR_SET_PDEATHSIG`: kept across `exec`, and across
/// `setpriv`'s change of user with `--pdeathsig keep`), so that quizload
/// killed outright leaves no server, database or tool behind.
pub fn tie_to_quizload(cmd: &mut Command, on_orphan: Signal) {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0);
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only async-signal-safe functions (prctl, getppid, kill).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(on_orphan)?;
            // quizload died before the prctl: nobody will signal us.
            if nix::unistd::getppid().as_raw() != parent {
                let _ = nix::sys::signal::raise(on_orphan);
            }
            Ok(())
        });
    }
}
