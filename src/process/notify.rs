//! The worker → supervisor channel: one pipe per worker process.
//!
//! A worker writes two-byte records `[kind, runtime]` (atomic, since they
//! are shorter than `PIPE_BUF`): `READY` once each of its event loops
//! serves, then a `HEARTBEAT` from each event loop every half second. The
//! supervisor polls the read ends together with its signalfd, so it learns
//! at once that a replacement is ready (and can start draining the worker
//! it replaces), and it measures each event loop's silence per process,
//! which a table shared by the old and new worker of a slot could not tell
//! apart. End of file on the pipe means the worker has exited.
//!
//! The write end is non-blocking: a supervisor that does not read never
//! blocks a worker (a heartbeat that does not fit is dropped). A write that
//! fails with `EPIPE` means the supervisor is gone.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Every event loop of the worker is serving (sent once per event loop).
pub const READY: u8 = b'R';
/// An event loop ticked (every half second).
pub const HEARTBEAT: u8 = b'H';

/// A pipe for one worker: `(read end, write end)`, both close-on-exec, the
/// read end non-blocking.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    set_nonblocking(&read)?;
    Ok((read, write))
}

fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The supervisor has gone away (the pipe's read end is closed).
#[derive(Debug)]
pub struct SupervisorGone;

/// The worker's end of the pipe.
pub struct Notifier {
    fd: OwnedFd,
}

impl Notifier {
    pub fn new(fd: OwnedFd) -> io::Result<Notifier> {
        set_nonblocking(&fd)?;
        Ok(Notifier { fd })
    }

    /// Sends one record. A full pipe drops it (heartbeats are idempotent;
    /// `READY` is the first record, sent into an empty pipe).
    pub fn send(&self, kind: u8, runtime: usize) -> Result<(), SupervisorGone> {
        let record = [kind, runtime.min(u8::MAX as usize) as u8];
        loop {
            match nix::unistd::write(&self.fd, &record) {
                Ok(_) | Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(_) => return Err(SupervisorGone),
            }
        }
    }
}

/// The supervisor's end: reassembles records from non-blocking reads.
pub struct Reader {
    fd: Option<OwnedFd>,
    partial: Option<u8>,
}

impl Reader {
    pub fn new(fd: OwnedFd) -> Reader {
        Reader {
            fd: Some(fd),
            partial: None,
        }
    }

    /// The descriptor to poll, until end of file.
    pub fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    /// Reads what is available and appends whole records to `out`. Closes
    /// the read end at end of file (the worker exited).
    pub fn drain(&mut self, out: &mut Vec<(u8, u8)>) {
        let mut buf = [0u8; 1024];
        while let Some(fd) = &self.fd {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => self.fd = None,
                Ok(n) => {
                    for &b in &buf[..n] {
                        match self.partial.take() {
                            Some(kind) => out.push((kind, b)),
                            None => self.partial = Some(b),
                        }
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => self.fd = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_arrive_whole_and_eof_closes_the_reader() {
        let (r, w) = pipe().unwrap();
        let notifier = Notifier::new(w).unwrap();
        let mut reader = Reader::new(r);
        let mut got = Vec::new();
        reader.drain(&mut got);
        assert!(got.is_empty());
        notifier.send(READY, 0).unwrap();
        notifier.send(HEARTBEAT, 3).unwrap();
        reader.drain(&mut got);
        assert_eq!(got, vec![(READY, 0), (HEARTBEAT, 3)]);
        assert!(reader.fd().is_some());
        drop(notifier);
        reader.drain(&mut got);
        assert!(reader.fd().is_none());
    }

    #[test]
    fn a_closed_supervisor_end_is_reported() {
        let (r, w) = pipe().unwrap();
        let notifier = Notifier::new(w).unwrap();
        drop(r);
        assert!(notifier.send(HEARTBEAT, 0).is_err());
    }
}
