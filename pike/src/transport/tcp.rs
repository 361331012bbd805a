//! TCP: connections over IPv4 and IPv6.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::{Listener, Transport};
use crate::address::{Address, PeerAddr};

impl Transport for TcpStream {
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self, token, Interest::READABLE | Interest::WRITABLE)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(self)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        TcpStream::take_error(self)
    }

    fn is_connected(&self) -> io::Result<bool> {
        match self.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn configure(&self, options: &SocketOptions) {
        configure_stream(self, options);
    }
}

/// Starts a non-blocking connect to `addr`.
pub(crate) fn connect(addr: SocketAddr) -> io::Result<Box<dyn Transport>> {
    Ok(Box::new(TcpStream::connect(addr)?))
}

#[derive(Debug)]
struct Tcp(TcpListener);

impl Listener for Tcp {
    fn accept(&mut self) -> io::Result<(Box<dyn Transport>, PeerAddr)> {
        let (stream, peer) = self.0.accept()?;
        Ok((Box::new(stream), PeerAddr::Inet(peer)))
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.0, token, Interest::READABLE)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.0)
    }
}

/// Listens on the first of `addrs` that can be bound.
pub(crate) fn bind(addrs: &[SocketAddr]) -> io::Result<(Box<dyn Listener>, Address)> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on");
    for addr in addrs {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(*addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket
            .bind(&(*addr).into())
            .and_then(|()| socket.listen(1024))
        {
            Ok(()) => {
                let listener: std::net::TcpListener = socket.into();
                listener.set_nonblocking(true)?;
                let local = listener.local_addr()?;
                return Ok((Box::new(Tcp(TcpListener::from_std(listener))), local.into()));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Socket options of every TCP connection of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketOptions {
    pub(crate) nodelay: bool,
    /// Keepalive probes after this long without traffic (then every third
    /// of it, three times).
    pub(crate) keepalive: Option<Duration>,
    /// `TCP_USER_TIMEOUT` (Linux): how long sent data may stay
    /// unacknowledged.
    pub(crate) user_timeout: Option<Duration>,
}

/// Applies the connector's socket options to a new connection: no-delay,
/// TCP keepalive and `TCP_USER_TIMEOUT`. Failures are logged, not fatal.
fn configure_stream(stream: &TcpStream, options: &SocketOptions) {
    if options.nodelay
        && let Err(e) = stream.set_nodelay(true)
    {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
    let socket = socket2::SockRef::from(stream);
    if let Some(idle) = options.keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(idle.div_f32(3.0).max(Duration::from_secs(1)))
            .with_retries(3);
        if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
            tracing::debug!("cannot set TCP keepalive: {e}");
        }
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(timeout) = options.user_timeout
        && let Err(e) = socket.set_tcp_user_timeout(Some(timeout))
    {
        tracing::debug!("cannot set TCP_USER_TIMEOUT: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_options_reach_the_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let stream = TcpStream::from_std(std_stream);
        let options = SocketOptions {
            nodelay: true,
            keepalive: Some(Duration::from_secs(30)),
            user_timeout: Some(Duration::from_secs(7)),
        };
        stream.configure(&options);
        let socket = socket2::SockRef::from(&stream);
        assert!(stream.nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert_eq!(
                socket.tcp_keepalive_time().unwrap(),
                Duration::from_secs(30)
            );
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(10)
            );
            assert_eq!(
                socket.tcp_user_timeout().unwrap(),
                Some(Duration::from_secs(7))
            );
        }
    }
}
