//! What the supervisor hands to a worker that it re-executes from the
//! binary: the slot's listening sockets, the shared metrics table (a memfd)
//! and the notification pipe as inherited descriptors, plus the worker's
//! place in the process model, in one environment variable.
//!
//! `QUIZBENCH_WORKER` is internal: the supervisor sets it only in the
//! environment of the program it executes, and the worker removes it at
//! once. Example: `slot=1;processes=2;listen=7,8;metrics=4;notify=12;parent=4242;budget=0`.

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// The environment variable that turns `quizbench serve` into a worker.
pub const ENV: &str = "QUIZBENCH_WORKER";

/// A worker's place in the process model and its inherited descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// Process slot (the worker's metrics slots start at `slot x runtimes`).
    pub slot: usize,
    /// Worker processes the supervisor started with.
    pub processes: usize,
    /// Listening sockets: one per event loop (thread-per-core) or one.
    pub listen: Vec<RawFd>,
    /// The shared metrics table (memfd).
    pub metrics: RawFd,
    /// Write end of the notification pipe.
    pub notify: RawFd,
    /// The supervisor's pid, for the parent check.
    pub parent: i32,
    /// Pools in the whole server when this worker runs the connection-budget
    /// check (0 = it does not).
    pub budget_pools: usize,
}

impl Handoff {
    pub fn encode(&self) -> String {
        let listen: Vec<String> = self.listen.iter().map(|fd| fd.to_string()).collect();
        format!(
            "slot={};processes={};listen={};metrics={};notify={};parent={};budget={}",
            self.slot,
            self.processes,
            listen.join(","),
            self.metrics,
            self.notify,
            self.parent,
            self.budget_pools
        )
    }

    pub fn decode(text: &str) -> anyhow::Result<Handoff> {
        let mut h = Handoff {
            slot: usize::MAX,
            processes: 0,
            listen: Vec::new(),
            metrics: -1,
            notify: -1,
            parent: 0,
            budget_pools: 0,
        };
        for part in text.split(';') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("{ENV}: bad field {part:?}"))?;
            let num = |v: &str| -> anyhow::Result<i64> {
                v.parse()
                    .map_err(|_| anyhow::anyhow!("{ENV}: {key}={v:?} is not a number"))
            };
            match key {
                "slot" => h.slot = num(value)? as usize,
                "processes" => h.processes = num(value)? as usize,
                "listen" => {
                    h.listen = value
                        .split(',')
                        .map(|v| num(v).map(|n| n as RawFd))
                        .collect::<anyhow::Result<_>>()?
                }
                "metrics" => h.metrics = num(value)? as RawFd,
                "notify" => h.notify = num(value)? as RawFd,
                "parent" => h.parent = num(value)? as i32,
                "budget" => h.budget_pools = num(value)? as usize,
                _ => anyhow::bail!("{ENV}: unknown field {key:?}"),
            }
        }
        let mut fds: Vec<RawFd> = h.listen.clone();
        fds.extend([h.metrics, h.notify]);
        let mut sorted = fds.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if h.slot == usize::MAX
            || h.processes == 0
            || h.listen.is_empty()
            || h.parent <= 1
            || fds.iter().any(|fd| *fd < 3)
            || sorted.len() != fds.len()
        {
            anyhow::bail!("{ENV}={text:?} is incomplete or inconsistent");
        }
        Ok(h)
    }

    /// Reads and removes the variable: `None` in a process the supervisor
    /// did not start.
    pub fn take_from_env() -> anyhow::Result<Option<Handoff>> {
        let Some(text) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        // Still single-threaded here: changing the environment is sound.
        std::env::remove_var(ENV);
        let text = text
            .into_string()
            .map_err(|_| anyhow::anyhow!("{ENV} is not UTF-8"))?;
        Handoff::decode(&text).map(Some)
    }
}

/// Takes ownership of an inherited descriptor, after checking that it is
/// open, and marks it close-on-exec again.
pub fn adopt(fd: RawFd) -> anyhow::Result<OwnedFd> {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor table; an invalid
    // number yields EBADF.
    #[allow(unsafe_code)]
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        anyhow::bail!("inherited descriptor {fd} is not open");
    }
    // SAFETY: the descriptor is open (checked above), was inherited for this
    // purpose only, and `Handoff::decode` refused duplicates, so nothing else
    // in this process owns it or will close it.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = Handoff {
            slot: 2,
            processes: 4,
            listen: vec![7, 8],
            metrics: 4,
            notify: 12,
            parent: 4242,
            budget_pools: 8,
        };
        assert_eq!(Handoff::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn refuses_inconsistent_values() {
        assert!(
            Handoff::decode("slot=0;processes=1;listen=5;metrics=5;notify=6;parent=9").is_err()
        );
        assert!(
            Handoff::decode("slot=0;processes=1;listen=1;metrics=5;notify=6;parent=9").is_err()
        );
        assert!(Handoff::decode("slot=0;processes=1;metrics=5;notify=6;parent=9").is_err());
        assert!(Handoff::decode("slot=0;what=1").is_err());
        assert!(Handoff::decode("slot=x").is_err());
    }

    #[test]
    fn adopting_a_closed_descriptor_fails() {
        assert!(adopt(987_654).is_err());
    }
}
