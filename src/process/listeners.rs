//! Listening sockets: the only thing created before workers are forked.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, TcpListener};

/// Binds a listening TCP socket with SO_REUSEADDR, optionally SO_REUSEPORT,
/// and the given backlog. Non-blocking, ready for tokio.
pub fn bind(addr: SocketAddr, reuse_port: bool, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds `count` sockets on the same address. With SO_REUSEPORT each one is
/// its own accept queue and the kernel spreads connections over them; a
/// port of 0 is resolved by the first bind and reused by the others.
pub fn bind_group(
    addr: SocketAddr,
    count: usize,
    reuse_port: bool,
    backlog: i32,
) -> std::io::Result<Vec<TcpListener>> {
    let first = bind(addr, reuse_port, backlog)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind(actual, reuse_port, backlog)?);
    }
    Ok(all)
}

/// The kernel's cap on listen backlogs (`net.core.somaxconn`).
pub fn somaxconn() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_shares_one_port() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3, true, 16).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert!(group.iter().all(|l| l.local_addr().unwrap().port() == port));
    }

    #[test]
    fn without_reuseport_a_second_bind_fails() {
        let first = bind("127.0.0.1:0".parse().unwrap(), false, 16).unwrap();
        let addr = first.local_addr().unwrap();
        assert!(bind(addr, false, 16).is_err());
    }
}
